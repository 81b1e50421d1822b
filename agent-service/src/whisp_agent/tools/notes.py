"""`write_note`: save a note or an action item for the caller (and only the caller)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from whisp_agent.tools.base import ToolDeps, ToolFailure, ToolSpec


class NoteArgs(BaseModel):
    text: str = Field(min_length=1, max_length=2000, description="The note, one item.")
    kind: Literal["note", "action_item"] = Field(
        default="note", description="'action_item' for a to-do, else 'note'."
    )


async def write_note(deps: ToolDeps, args: NoteArgs) -> str:
    if deps.notes is None:
        raise ToolFailure("notes are not available in this service")
    note_id = await deps.notes.add(deps.user_id, args.kind, args.text.strip(), deps.run_key)
    label = "action item" if args.kind == "action_item" else "note"
    return f"saved {label} #{note_id}: {args.text.strip()}"


TOOL = ToolSpec(
    name="write_note",
    description="Save a note or an action item to the user's notes. One call per item.",
    args=NoteArgs,
    run=write_note,
)
