using System;
using System.Collections.Generic;

namespace Vigil.Tool;

/// <summary>
/// `--name value` options and bare flags. Every option given must be consumed by the command,
/// so a misspelt option is an error rather than silently ignored. An option may be repeated only
/// where the command reads it with <see cref="Multiple"/>.
/// </summary>
internal sealed class Options
{
    private readonly Dictionary<string, List<string?>> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _used = new(StringComparer.Ordinal);
    private readonly List<string> _arguments = [];
    private int _argumentsUsed;

    public Options(string[] args)
    {
        for (int i = 0; i < args.Length; i++)
        {
            string name = args[i];
            if (!name.StartsWith("--", StringComparison.Ordinal))
            {
                // A bare argument before any option (`vigil log FILE`); a command that takes none rejects it.
                if (_values.Count > 0) throw new UsageException($"unexpected argument '{name}'");
                _arguments.Add(name);
                continue;
            }
            string? value = i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal) ? args[++i] : null;
            if (_values.TryGetValue(name, out var values)) values.Add(value);
            else _values[name] = [value];
        }
    }

    public string Required(string name) => Optional(name) ?? throw new UsageException($"missing option {name} VALUE");

    public string? Optional(string name)
    {
        _used.Add(name);
        if (!TrySingle(name, out string? value)) return null;
        return value ?? throw new UsageException($"option {name} needs a value");
    }

    /// <summary>Every value of an option that may be given several times (`--scenario a --scenario b`), in order.</summary>
    public IReadOnlyList<string> Multiple(string name)
    {
        _used.Add(name);
        if (!_values.TryGetValue(name, out var values)) return [];
        return values.ConvertAll(value => value ?? throw new UsageException($"option {name} needs a value"));
    }

    /// <summary>The next bare argument (they come before the options), named in the error when missing.</summary>
    public string Argument(string name)
    {
        if (_argumentsUsed >= _arguments.Count) throw new UsageException($"missing argument {name}");
        return _arguments[_argumentsUsed++];
    }

    public int OptionalInt(string name, int fallback)
    {
        string? text = Optional(name);
        if (text == null) return fallback;
        return int.TryParse(text, out int value) ? value : throw new UsageException($"option {name}: '{text}' is not a number");
    }

    public bool Flag(string name)
    {
        _used.Add(name);
        if (!TrySingle(name, out string? value)) return false;
        return value == null ? true : throw new UsageException($"option {name} takes no value");
    }

    private bool TrySingle(string name, out string? value)
    {
        value = null;
        if (!_values.TryGetValue(name, out var values)) return false;
        if (values.Count > 1) throw new UsageException($"option {name} given twice");
        value = values[0];
        return true;
    }

    public void EnsureAllUsed()
    {
        if (_argumentsUsed < _arguments.Count) throw new UsageException($"unexpected argument '{_arguments[_argumentsUsed]}'");
        foreach (string name in _values.Keys)
        {
            if (!_used.Contains(name)) throw new UsageException($"unknown option {name}");
        }
    }
}

internal sealed class UsageException(string message) : Exception(message);
