/* The load generator and echo peer of python -m twisted_turn.bench. */
#ifndef TWISTED_TURN_TURNBENCH_H
#define TWISTED_TURN_TURNBENCH_H
int tb_version(void);
#endif
