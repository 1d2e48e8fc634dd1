"""LLM-as-a-judge: templates, the reply parser, verdict aggregation and the run summary.

The method follows "Large Language Models are not Fair Evaluators" (Wang et
al., ACL 2024, arXiv 2305.17926): every pair is judged in both answer orders
(balanced position calibration), optionally with several sampled replies per
order (multiple evidence calibration), and the entropy of the outcomes ranks
pairs for human review. Importing this package imports neither torch nor
transformers.
"""
