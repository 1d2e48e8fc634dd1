"""``pfx stats`` library: the dataset report, its measures, prompt overlap and labeling agreement."""
