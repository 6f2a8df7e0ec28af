"""The command line: serve, the simulator, tokens, exports, uploads and the configuration
reference."""
