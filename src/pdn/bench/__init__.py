"""Benchmarks kept with the code: the ablation that tests PDN's claim (:mod:`.ablation`) and the
speed and memory measurements (:mod:`.speed`), both driven by ``pdn bench``."""
