"""The tools built on the envs and agents: the ``mtenv`` command, evaluation, recording, perf.

* :mod:`~mtenv.tools.cli`: the ``mtenv`` command line.
* :mod:`~mtenv.tools.evaluation`: running policies for episodes and summarising their metrics.
* :mod:`~mtenv.tools.recording`: run folders for ``mtenv plot``.
* :mod:`~mtenv.tools.perf`: the step-rate benchmark.
* :mod:`~mtenv.tools.plan_card`: the zoo card's section on collaborating plans.
"""
