using System;

namespace Vigil.Tool;

/// <summary>A failure the tool reports as a message (no stack trace) and exit code 1.</summary>
public sealed class ToolException(string message) : Exception(message);
