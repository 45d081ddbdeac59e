#include "turnbench.h"
int tb_version(void) { return 1; }
