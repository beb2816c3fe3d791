"""Human-readable output: tables on the terminal, report.md and plots."""
