"""Setpoint optimisation: an advisor that proposes, a twin that tries, a loop that applies safely.

``spec`` declares a unit's problem, ``metrics`` computes its figures from history, ``surrogate``
learns how they respond to the setpoints, ``advisor`` proposes inside the bounds and the trust
region, ``twin`` runs the virtual factory ahead, and ``loop`` carries a proposal through approval,
the audited write, verification and keep-or-roll-back.
"""
