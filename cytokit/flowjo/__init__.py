"""FlowJo workspaces: read FlowJo 10 ``.wsp`` into the neutral gate hierarchy, apply it, write it back."""
from .model import FlowJoSample, FlowJoWorkspace
from .apply import workspace_counts
from .reader import read_workspace
from .writer import WorkspaceEntry, workspace_bytes, write_workspace

__all__ = ["FlowJoSample", "FlowJoWorkspace", "read_workspace", "workspace_counts", "WorkspaceEntry", "workspace_bytes",
           "write_workspace"]
