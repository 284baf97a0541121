"""Reports of a run: terminal text, JSON results file, HTML page, JUnit properties, GitHub summary,
the probe-by-probe comparison of two runs (compare.py) and writing them all at the end (write.py).

Why a package of small modules: each format has its own reader (a terminal, a CI page, a browser,
`compare`), and all of them read the same results types (harness/results.py) through matrix.py.
"""
