"""Subscription events executed once for all who asked the same: one principal's subscribers
share each import-progress snapshot, so the same document over the same snapshot gives the
same result, and 5,000 subscribers need one execution per change, not 5,000."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import orjson
from graphql import ExecutionResult, FieldNode, OperationType
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

# Root fields whose events are shared objects and whose types resolve from the event alone
# (no resolver reads the caller's context), so one result serves every subscriber.
SHARED_EVENT_FIELDS = frozenset({"importProgress"})


def shared_event_executor(maxsize: int = 256) -> type[StrawberryGraphQLCoreExecutionContext]:
    """An executor class whose per-event results are remembered, for one schema: keyed by the
    event object (kept alive with the result, so its id is never reused meanwhile), the parsed
    operation (one object per document text, app/graphql/limits.py) and the variables."""
    results: OrderedDict[tuple[int, int, bytes], tuple[object, ExecutionResult]] = OrderedDict()

    class SharedEventExecutor(StrawberryGraphQLCoreExecutionContext):
        def build_per_event_executor(self, payload: Any) -> Any:
            # A known event skips the per-event copy of the whole executor too.
            if _shared(self):
                known = results.get(self._key(payload))
                if known is not None and known[0] is payload:
                    return _Executed(known[1])
            return super().build_per_event_executor(payload)

        def execute_operation(self, serially: bool | None = None) -> Any:
            if not _shared(self):
                return super().execute_operation(serially)
            event = self.root_value
            result = super().execute_operation(serially)
            # Results with errors are coded per subscriber (they are mutated): never shared.
            if isinstance(result, ExecutionResult) and not result.errors:
                results[self._key(event)] = (event, result)
                if len(results) > maxsize:
                    results.popitem(last=False)
            return result

        def _key(self, event: object) -> tuple[int, int, bytes]:
            return (id(event), id(self.operation), _variables(self.variable_values.coerced))

    return SharedEventExecutor


class _Executed:
    """What graphql-core asks of a per-event executor, for an event already executed."""

    def __init__(self, result: ExecutionResult) -> None:
        self.result = result

    def execute_operation(self, serially: bool | None = None) -> ExecutionResult:
        return self.result


def _shared(executor: StrawberryGraphQLCoreExecutionContext) -> bool:
    operation = executor.operation
    if operation.operation is not OperationType.SUBSCRIPTION:
        return False
    selections = operation.selection_set.selections
    return (
        len(selections) == 1
        and isinstance(selections[0], FieldNode)
        and selections[0].name.value in SHARED_EVENT_FIELDS
    )


def _variables(values: dict[str, Any]) -> bytes:
    return orjson.dumps(values, option=orjson.OPT_SORT_KEYS, default=repr)
