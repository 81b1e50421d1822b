"""The handoff graph of a registry (agent -> the agents it may hand off to): the loops in it
and what reaches them, found in linear time so a hostile file cannot hang validation."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping


def one_cycle_per_loop(graph: Mapping[str, list[str]]) -> Iterator[list[str]]:
    """One cycle per group of agents that can hand off round in circles (a strongly
    connected component with a cycle), starting at its first agent by name: linear in the
    graph, where listing every elementary cycle can take exponential time (a shared
    `delegate_to` alias among 14 agents is millions of cycles)."""
    for component in _strongly_connected(graph):
        root = min(component)
        if len(component) == 1 and root not in graph.get(root, []):
            continue
        yield _shortest_cycle(graph, root, component)


def _strongly_connected(graph: Mapping[str, list[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (a deep chain must not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[set[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, int]] = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            successors = graph.get(node, [])
            if i < len(successors):
                work.append((node, i + 1))
                nxt = successors[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                found.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def _shortest_cycle(graph: Mapping[str, list[str]], root: str, within: set[str]) -> list[str]:
    """The shortest way from `root` back to itself inside its component (breadth first)."""
    came_from: dict[str, str] = {}
    queue = deque([root])
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph.get(node, [])):
            if nxt == root:
                path = [node]
                while path[-1] != root:
                    path.append(came_from[path[-1]])
                return path[::-1]
            if nxt in within and nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    return [root]  # unreachable for a component with a cycle


def reaches(graph: Mapping[str, list[str]], start: str, targets: set[str]) -> bool:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node in targets:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, []))
    return False
