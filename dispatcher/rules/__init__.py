"""The operators' rules: regions, teams and the route tree, loaded from YAML and checked."""
