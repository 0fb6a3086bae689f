"""The Gymnasium layer: the env, its observation and its action catalog.

* :mod:`~mtenv.envs.task_allocation`: :class:`TaskAllocationEnv`, the simulator as a Gymnasium env.
* :mod:`~mtenv.envs.observation`: the observation vector, written for the env and named for agents.
* :mod:`~mtenv.envs.feedback`: what became of the tasks settled in a step (``info["feedback"]``).
* :mod:`~mtenv.envs.catalog`: static facts about every (plan, device) action.
"""
