"""The webhook landing zone: verify signed events, write each once as a file, answer fast.

No Dagster here: the receiver runs alone, and the landing-zone sensor reads the files.
"""
