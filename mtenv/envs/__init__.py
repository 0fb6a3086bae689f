"""The Gymnasium layer: the env, its observation and its action catalog.

* :mod:`~mtenv.envs.task_allocation`: :class:`TaskAllocationEnv`, the simulator as a Gymnasium env.
* :mod:`~mtenv.envs.vector`: :class:`BatchedTaskAllocationEnv`, K of them stepped together on one
  shared engine (what ``gym.make_vec`` of an mtenv id returns).
* :mod:`~mtenv.envs.observation`: the observation vector, written for the env and named for agents.
* :mod:`~mtenv.envs.feedback`: what became of the tasks settled in a step (``info["feedback"]``).
* :mod:`~mtenv.envs.catalog`: static facts about every (plan, device) action.
"""
