"""Test doubles that ship with ovencast because a command uses them: a fake of the
upstream sales, weather and traffic services (docs/UPSTREAM.md's contract) serving a
dataset directory, with fault injection. `ovencast data-server` runs it; the tests of
`sources/` run the real HTTP client against it on loopback. Nothing in the service itself
imports this package."""
