"""The baselines a learned allocator must beat, all deployable (none reads hidden state).

* :mod:`~mtenv.agents.baselines.mask_only`: random and round-robin, which read only the mask.
* :mod:`~mtenv.agents.baselines.heuristics`: the load- and card-based rules of serving systems
  (least-loaded, fastest, most-accurate, INFaaS, cascade) and the expected-reward rule.
* :mod:`~mtenv.agents.baselines.bandits`: ε-greedy, UCB1 and Exp3 over plans, learning online.
"""
