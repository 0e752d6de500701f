"""What every layer shares: archs, the space and evaluator protocols, objectives and Pareto
fronts, typed config loading with bounded input, seeding and the plug-in registry.

Imports nothing of ours outside ``nas.core`` (enforced by import-linter; see
``docs/ARCHITECTURE.md``), and never torch.
"""
