"""Offload a CPU-bound job over every core with fork.Executor, with a progress bar.

The progress bar needs tqdm: `pip install 'goforkpy[progress]'` (`make demo` has it).
"""

import math
import time

import goforkpy as fork


def count_primes(block):
    """Primes in [block * 50_000, (block + 1) * 50_000): deliberately CPU-bound."""
    start, stop = block * 50_000, (block + 1) * 50_000
    return sum(1 for n in range(max(start, 2), stop) if _is_prime(n))


def _is_prime(n):
    return all(n % d for d in range(2, math.isqrt(n) + 1))


def main():
    blocks = range(40)
    started = time.perf_counter()
    with fork.Executor() as executor:  # one worker per CPU this process may use
        counts = list(executor.map(count_primes, blocks, chunksize=2, progress=True))
    elapsed = time.perf_counter() - started
    print(f"{sum(counts)} primes below {len(blocks) * 50_000:,} in {elapsed:.1f} s")


if __name__ == "__main__":
    main()
