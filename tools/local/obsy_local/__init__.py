"""OBSY on one machine, outside containers: ``obsy-local`` (:mod:`obsy_local.launcher`) and its
demonstration (:mod:`obsy_local.demo`). Not part of the core library: no service imports it."""
