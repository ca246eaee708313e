namespace ModelCompiler.Runtime;

/// <summary>
/// The one documented user-error type: bad input (a file, a shape, an option) rather than a bug.
/// Its message is a single line that names the file, position or tensor at fault; the CLI prints it
/// without a stack trace and exits non-zero.
/// </summary>
public class McException : Exception
{
    public McException(string message) : base(message) { }
    public McException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A weight or input file is malformed, truncated, hostile or does not match the model.</summary>
public sealed class ModelFormatException : McException
{
    public ModelFormatException(string message) : base(message) { }
    public ModelFormatException(string message, Exception inner) : base(message, inner) { }
}
