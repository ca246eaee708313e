namespace ModelCompiler.IR;

/// <summary>Where something came from in a DSL file: 1-based line and column.</summary>
public sealed record SourceSpan(string File, int Line, int Column)
{
    public override string ToString() => $"{System.IO.Path.GetFileName(File)}:{Line}:{Column}";
}
