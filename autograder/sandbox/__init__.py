"""Running student code away from the grading process.

The grading process never imports a submission. A *zygote* process (spawned fresh,
so it holds no reference code and no hidden test) loads the model once; every worker
is forked from it, sharing the weights copy-on-write. Workers talk to the grading
process over a socket in plain frames (JSON + raw tensor bytes, never pickle).
"""
