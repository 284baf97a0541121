"""Reports of a run: terminal text, JSON results file, HTML page, JUnit properties, GitHub summary.

Why a package of small modules: each format has its own reader (a terminal, a CI page, a browser,
`compare`), and all of them read the same results types (harness/results.py) through matrix.py.
"""
