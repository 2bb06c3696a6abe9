"""Placeholder until this command is implemented (owner replaces the whole module)."""
import typer


def register(app: typer.Typer) -> None:
    return None
