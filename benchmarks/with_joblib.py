"""joblib's "goforkpy" backend against loky, joblib's default, side by side in one run.

Two workloads: many tiny tasks (the cost of dispatch, batching and results)
and a small scikit-learn grid search (real work, as ``n_jobs`` users run it).
Both backends keep their workers from call to call, so each is warmed up
once and then timed round by round, in turn.
"""

import time


def tiny(x):
    return x + 1


def _median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def bench_joblib(rounds, tasks=10_000):
    try:
        import joblib
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GridSearchCV
    except ImportError as exc:
        print(
            f"\njoblib backend: skipped ({exc.name} is not installed: pip install goforkpy[test])"
        )
        return
    import goforkpy.joblib

    features, labels = load_iris(return_X_y=True)
    grid = {"C": [0.01, 0.1, 1.0, 10.0]}

    def many_tiny():
        joblib.Parallel(n_jobs=2)(joblib.delayed(tiny)(i) for i in range(tasks))

    def grid_search():
        GridSearchCV(LogisticRegression(max_iter=300), grid, cv=3, n_jobs=2).fit(features, labels)

    print("\njoblib: the goforkpy backend beside loky (n_jobs=2; warm workers, medians)")
    for title, work in (
        (f"{tasks:,} tiny tasks", many_tiny),
        ("GridSearchCV, 12 fits", grid_search),
    ):
        samples = {"loky": [], "goforkpy": []}
        for name in samples:  # start each backend's workers before timing
            with joblib.parallel_config(backend=name):
                work()
        for _ in range(rounds):
            for name, seconds in samples.items():
                with joblib.parallel_config(backend=name):
                    began = time.perf_counter()
                    work()
                    seconds.append(time.perf_counter() - began)
        loky, ours = _median(samples["loky"]), _median(samples["goforkpy"])
        print(
            f"  {title:<24} loky {loky * 1e3:8.1f} ms   goforkpy {ours * 1e3:8.1f} ms   "
            f"{ours / loky:5.2f}x   (target <= 1.1x)"
        )
    goforkpy.joblib.shutdown()
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)
