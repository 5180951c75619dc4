"""One module per verb: orchestration only; verbs never import each other."""
