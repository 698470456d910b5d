"""Password hashing: Argon2id at OWASP's minimum parameters (issue 16's load test).

Django 5.2's default, PBKDF2-SHA256 at 1,000,000 iterations, costs ~0.22 s of CPU per sign-in on
this class of machine, and GPUs attack it cheaply because it needs no memory. OWASP's Password
Storage Cheat Sheet puts Argon2id first, with a minimum of 19 MiB of memory, 2 iterations and 1
degree of parallelism (one of its equivalent settings); at those parameters a hash takes ~23 ms
of CPU and 19 MiB, so fifty people signing in at once no longer take the web server's cores for
ten seconds (docs/benchmarks.md, load test). The hash string is the standard `argon2$argon2id$...`
Django writes, with its parameters inside, so raising them later re-hashes each password at its
next sign-in (Django's must_update), as does every PBKDF2 hash stored before this.
"""

from __future__ import annotations

from django.contrib.auth.hashers import Argon2PasswordHasher


class Argon2idHasher(Argon2PasswordHasher):
    """Django's Argon2 hasher (argon2id, algorithm name "argon2") with OWASP's minimum parameters."""

    time_cost = 2
    memory_cost = 19 * 1024  # KiB: 19 MiB
    parallelism = 1
