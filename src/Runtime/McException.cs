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

/// <summary>Text from a file placed inside an error message.</summary>
public static class UserText
{
    private const int MaxQuotedLength = 200;

    /// <summary>
    /// Quotes a name taken from a file. It is hostile input: escape control characters (so the message
    /// stays on one line) and cut very long names (so a 100 MB name does not become a 100 MB message).
    /// </summary>
    public static string Quote(string name)
    {
        var text = name.Length > MaxQuotedLength ? name[..MaxQuotedLength] + "..." : name;
        var sb = new System.Text.StringBuilder(text.Length + 2).Append('\'');
        foreach (char c in text)
        {
            if (char.IsControl(c) || c is '\u2028' or '\u2029') sb.Append($"\\u{(int)c:x4}");
            else sb.Append(c);
        }
        return sb.Append('\'').ToString();
    }

    /// <summary>
    /// A library's exception message placed after ours: its first line, control characters escaped and cut to a
    /// readable length. System.Text.Json quotes the offending input in its messages, so that text is hostile too.
    /// </summary>
    public static string Detail(string message)
    {
        var firstLine = message.Split('\n')[0].Trim();
        return Quote(firstLine)[1..^1];
    }
}
