"""How rollout reaches a host: one small interface, a local and an SSH implementation.

Only this package imports Fabric, paramiko and ansible-runner.
"""
