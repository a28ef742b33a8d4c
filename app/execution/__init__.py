"""Executing GraphQL operations: compiled plans, the level-at-a-time runner, and shared
executions for subscribers."""

from app.execution.context import ChimeraExecutionContext, execution_context_class

__all__ = ["ChimeraExecutionContext", "execution_context_class"]
