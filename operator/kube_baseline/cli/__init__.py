"""The offline commands: arguments, manifest reading, output formats, the YAML writer."""
