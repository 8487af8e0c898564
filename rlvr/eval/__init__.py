"""`rlvr eval`: GSM8K and MATH-500 accuracy with confidence intervals, pass@k, and paired comparisons of two runs."""
