"""Input types built straight from the value graphql-core hands over.

Strawberry turns an input value into its class field by field, working out each field's
type from its annotation on every request; for `CreateTaskInput` (ten fields, each with a
default the schema publishes, so each one present) that was the costliest step of a
create after the INSERT. graphql-core has already coerced the value by then: scalars and
enums are the Python values the class holds, so only lists and nested inputs are left to
convert. `built_directly` works out, once, which fields those are, and installs a builder
through Strawberry's `from_input` hook (fenced in `schema.internals`) that copies the rest
as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from strawberry import LazyType
from strawberry.relay import GlobalID
from strawberry.types import get_object_definition, has_object_definition

from schema.internals import (
    InputContext,
    StrawberryList,
    StrawberryMaybe,
    StrawberryOptional,
    StrawberryType,
    install_input_builder,
    to_camel_case,
)

InputClass = TypeVar("InputClass", bound=type)


def _copied_as_is(field_type: StrawberryType | type) -> bool:
    """Whether graphql-core's value for a field of this type is already the Python value:
    a scalar or an enum. Lists are copied (graphql-core hands every request the same
    default list), inputs built, GlobalIDs decoded."""
    while isinstance(field_type, StrawberryOptional):
        field_type = field_type.of_type
    if isinstance(field_type, StrawberryList | LazyType) or field_type is GlobalID:
        return False
    return not has_object_definition(field_type)


@dataclasses.dataclass(frozen=True)
class _Plan:
    # (GraphQL name, Python name) of the fields whose value is used as it is.
    copied: tuple[tuple[str, str], ...]
    # (GraphQL name, Python name, type) of the fields Strawberry converts.
    converted: tuple[tuple[str, str, StrawberryType | type], ...]
    # As Strawberry does: a field without a default is None when the value leaves it out.
    implicit: dict[str, None]


def _plan_of(input_class: type) -> _Plan:
    definition = get_object_definition(input_class, strict=True)
    copied, converted = [], []
    for field in definition.fields:
        field_type = field.resolve_type(type_definition=definition)
        if isinstance(field_type, StrawberryMaybe):
            # Strawberry leaves a Maybe's null to the builder; this one does not check it.
            raise TypeError(f"{input_class.__name__}.{field.python_name} is a Maybe")
        # The schema's name converter: camelCase unless a field names itself.
        graphql_name = field.graphql_name or to_camel_case(field.python_name)
        if _copied_as_is(field_type):
            copied.append((graphql_name, field.python_name))
        else:
            converted.append((graphql_name, field.python_name, field_type))
    implicit = {
        field.python_name: None
        for field in definition.fields
        if field.default_value is dataclasses.MISSING
        and field.default_factory is dataclasses.MISSING
    }
    return _Plan(tuple(copied), tuple(converted), implicit)


def built_directly(input_class: InputClass) -> InputClass:
    """Build `input_class` from its input value without converting scalars and enums.
    Which fields need converting is worked out at the first request, once every type the
    annotations name exists."""
    plans: dict[type, _Plan] = {}

    def from_input(cls: type, value: Mapping[str, Any], context: InputContext) -> Any:
        plan = plans.get(cls)
        if plan is None:
            plan = plans[cls] = _plan_of(cls)
        values: dict[str, Any] = {**plan.implicit}
        values.update((python, value[name]) for name, python in plan.copied if name in value)
        for name, python, field_type in plan.converted:
            if name in value:
                values[python] = context.convert(value[name], field_type, name)
        return cls(**values)

    install_input_builder(input_class, from_input)
    return input_class
