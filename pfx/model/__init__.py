"""The model core: loading, tokenization and log-probs for every model command.

Only ``pfx.model.config`` may be imported without torch; every other module
here imports torch and transformers and is imported inside the model commands.
"""
