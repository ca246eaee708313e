using System.Text;
using ModelCompiler.IR;

namespace ModelCompiler.Frontend;

public enum Severity { Error, Warning }

/// <summary>
/// The diagnostic codes of the frontend, in one place (docs/language.md lists them).
/// MC01xx: syntax. MC02xx: names, values and declarations. MC03xx: shapes and types of tensors.
/// </summary>
public static class Codes
{
    public const string Syntax = "MC0101";
    public const string UnterminatedString = "MC0102";
    public const string UnclosedBrace = "MC0103";
    public const string BadNumber = "MC0104";
    public const string UnknownDeclaration = "MC0105";
    public const string BadInterpolation = "MC0106";
    public const string TooDeep = "MC0107";

    public const string UnknownName = "MC0201";
    public const string UnknownFunction = "MC0202";
    public const string BadArguments = "MC0203";
    public const string Duplicate = "MC0204";
    public const string WrongValueType = "MC0205";
    public const string ImportFailed = "MC0206";
    public const string MissingDeclaration = "MC0207";
    public const string ReturnMisplaced = "MC0208";
    public const string BadHyperValue = "MC0209";
    public const string Arithmetic = "MC0210";
    public const string UnknownType = "MC0211";
    public const string Recursion = "MC0212";
    public const string BadWeight = "MC0213";
    public const string UnsupportedConfig = "MC0214";
    public const string TooLarge = "MC0215";

    public const string ShapeMismatch = "MC0301";
    public const string BadShape = "MC0302";
}

public sealed record Diagnostic(Severity Severity, string Code, SourceSpan Span, string Message)
{
    /// <summary><c>model.arch:12:5: error MC0102: message</c></summary>
    public string Header => $"{Span.File}:{Span.Line}:{Span.Column}: {(Severity == Severity.Error ? "error" : "warning")} {Code}: {Message}";

    /// <summary>The header, then the source line and a caret under the column (when the source is known).</summary>
    public string Render(string? sourceText)
    {
        var sb = new StringBuilder(Header);
        var lines = sourceText?.Split('\n');
        if (lines is not null && Span.Line >= 1 && Span.Line <= lines.Length)
        {
            var line = lines[Span.Line - 1].TrimEnd('\r');
            sb.Append('\n').Append("  ").Append(line);
            int caret = Math.Clamp(Span.Column - 1, 0, line.Length);
            var pad = new StringBuilder();
            for (int i = 0; i < caret; i++) pad.Append(line[i] == '\t' ? '\t' : ' ');
            sb.Append('\n').Append("  ").Append(pad).Append('^');
        }
        return sb.ToString();
    }
}

/// <summary>Collects diagnostics instead of throwing them, so one run reports every independent error.</summary>
public sealed class DiagnosticBag
{
    private readonly List<Diagnostic> _items = new();
    private readonly Dictionary<string, string> _sources = new(StringComparer.Ordinal);

    public IReadOnlyList<Diagnostic> Items => _items;

    public bool HasErrors => _items.Any(d => d.Severity == Severity.Error);

    public void AddSource(string path, string text) => _sources[path] = text;

    public void Error(string code, SourceSpan span, string message) => _items.Add(new Diagnostic(Severity.Error, code, span, message));

    public void Add(Diagnostic d) => _items.Add(d);

    /// <summary>Every diagnostic, sorted by file and position, rendered with source lines and carets.</summary>
    public string Render() => string.Join("\n", Sorted().Select(d => d.Render(_sources.GetValueOrDefault(d.Span.File))));

    public IEnumerable<Diagnostic> Sorted() =>
        _items.OrderBy(d => d.Span.File, StringComparer.Ordinal).ThenBy(d => d.Span.Line).ThenBy(d => d.Span.Column);
}

/// <summary>Thrown inside elaboration to abandon the current declaration; always caught and turned into a diagnostic.</summary>
public sealed class DiagnosticException(Diagnostic diagnostic) : Exception(diagnostic.Message)
{
    public Diagnostic Diagnostic { get; } = diagnostic;
}
