"""The executor: the one place with side effects on hosts, with the host layout and checks."""
