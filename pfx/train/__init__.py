"""Training for ``pfx train-dpo``: data and batching, the reference log-prob cache, the loop,
checkpoints and metrics. Every module here imports torch; the command imports them lazily.
"""
