namespace ModelCompiler.Runtime.Generation;

/// <summary>
/// Cuts streamed text at the first occurrence of any stop string (the stop string itself is not output, as in
/// Hugging Face's and vLLM's defaults). Text that could be the start of a stop string is held back until the
/// next piece shows whether it is.
/// </summary>
public sealed class StopStrings
{
    private readonly string[] _stops;
    private string _pending = "";

    public StopStrings(IEnumerable<string> stops)
    {
        _stops = stops.ToArray();
        if (_stops.Any(s => s.Length == 0)) throw new McException("--stop \"\": a stop string must not be empty");
    }

    /// <summary>Whether a stop string has been seen (nothing more will be released).</summary>
    public bool Stopped { get; private set; }

    /// <summary>Adds streamed text; returns what can be released now.</summary>
    public string Push(string text)
    {
        if (Stopped) return "";
        _pending += text;
        int cut = -1;
        foreach (var stop in _stops)
        {
            int at = _pending.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (cut < 0 || at < cut)) cut = at;
        }
        if (cut >= 0)
        {
            Stopped = true;
            var before = _pending[..cut];
            _pending = "";
            return before;
        }
        int hold = HeldBack();
        var release = _pending[..^hold];
        _pending = _pending[^hold..];
        return release;
    }

    /// <summary>The text held back at the end of generation (it did not become a stop string).</summary>
    public string Flush()
    {
        var rest = Stopped ? "" : _pending;
        _pending = "";
        return rest;
    }

    /// <summary>The length of the longest suffix of the pending text that is a proper prefix of a stop string.</summary>
    private int HeldBack()
    {
        int best = 0;
        foreach (var stop in _stops)
            for (int n = Math.Min(stop.Length - 1, _pending.Length); n > best; n--)
                if (_pending.AsSpan(_pending.Length - n).SequenceEqual(stop.AsSpan(0, n))) { best = n; break; }
        return best;
    }
}
