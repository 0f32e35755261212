"""Judge: stored runs in, findings out (the CI gate, its statistics, the nightly trend).

Pure functions over ``harness.store`` data: no argparse, no printing, no measuring.
"""
