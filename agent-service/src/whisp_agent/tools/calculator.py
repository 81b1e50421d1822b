"""`calculator`: arithmetic from a parsed syntax tree — no eval, no names, no attributes.

Only numbers, + - * / // % ** and parentheses are allowed; exponents and results are
bounded so a model cannot make the service compute 9**9**9.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

from pydantic import BaseModel, Field

from whisp_agent.tools.base import ToolDeps, ToolFailure, ToolSpec

MAX_EXPRESSION_CHARS = 200
MAX_EXPONENT = 1000
MAX_MAGNITUDE = 1e100

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


class CalculatorArgs(BaseModel):
    expression: str = Field(description="Arithmetic only, e.g. '(12.5 + 7) * 3 / 4' or '2**10'.")


def evaluate(expression: str) -> float | int:
    """The value of an arithmetic expression; ToolFailure for anything else."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolFailure(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise ToolFailure(f"not an arithmetic expression: {expression!r}") from exc
    try:
        value = _eval(tree.body)
    except ZeroDivisionError as exc:
        raise ToolFailure("division by zero") from exc
    except OverflowError as exc:
        raise ToolFailure("result too large") from exc
    if isinstance(value, float) and (math.isnan(value) or abs(value) > MAX_MAGNITUDE):
        raise ToolFailure("result is not a usable number")
    return value


def _eval(node: ast.expr) -> float | int:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        number: float | int = node.value  # type: ignore[assignment]  # checked just above
        return number
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolFailure(f"exponent above {MAX_EXPONENT}")
        result = _BINARY[type(node.op)](left, right)
        if isinstance(result, complex):
            raise ToolFailure("complex results are not supported")
        if abs(result) > MAX_MAGNITUDE:
            raise ToolFailure("result too large")
        return result
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    raise ToolFailure(
        f"only numbers and + - * / // % ** ( ) are allowed, not {ast.unparse(node)!r}"
    )


async def calculate(_deps: ToolDeps, args: CalculatorArgs) -> str:
    value = evaluate(args.expression)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return f"{args.expression} = {value}"


TOOL = ToolSpec(
    name="calculator",
    description="Exact arithmetic. Use it for any calculation instead of guessing.",
    args=CalculatorArgs,
    run=calculate,
)
