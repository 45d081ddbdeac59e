"""
The relay benchmark (python -m twisted_turn.bench).
"""
