"""Fault tests: real servers stopped hard, pools exhausted, processes killed mid-load."""
