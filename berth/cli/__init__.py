"""The `berth` command: provision, deploy, roll back, inspect and remove Berth servers.

Playbooks run through ansible-runner; see docs/cli.md for commands and exit codes.
"""
