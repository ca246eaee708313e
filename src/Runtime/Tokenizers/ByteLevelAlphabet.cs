using System.Text;

namespace ModelCompiler.Runtime.Tokenizers;

/// <summary>GPT-2's byte-to-unicode table: printable bytes stand for themselves, the others for U+0100.. in
/// order, so that every byte string is a string of visible characters ("Ġ" is the space byte).</summary>
public static class ByteLevelAlphabet
{
    private static readonly char[] ByteToChar = Build();
    private static readonly Dictionary<char, byte> CharToByte = ByteToChar.Select((c, b) => (c, b)).ToDictionary(x => x.c, x => (byte)x.b);

    private static char[] Build()
    {
        var table = new char[256];
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= 33 and <= 126 or >= 161 and <= 172 or >= 174 and <= 255;
            table[b] = printable ? (char)b : (char)(256 + n++);
        }
        return table;
    }

    public static char Char(byte b) => ByteToChar[b];

    /// <summary>The byte-level string of <paramref name="text"/>'s UTF-8 bytes.</summary>
    public static string Encode(string text) => Encode(text.AsSpan());

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public static string Encode(ReadOnlySpan<char> text)
    {
        int n = Encoding.UTF8.GetByteCount(text);
        Span<char> chars = n <= 512 ? stackalloc char[n] : new char[n];
        if (n == text.Length)
        {
            for (int i = 0; i < n; i++) chars[i] = ByteToChar[text[i]];   // ASCII: one byte per char
        }
        else
        {
            Span<byte> bytes = n <= 512 ? stackalloc byte[n] : new byte[n];
            Encoding.UTF8.GetBytes(text, bytes);
            for (int i = 0; i < n; i++) chars[i] = ByteToChar[bytes[i]];
        }
        return new string(chars);
    }

    /// <summary>Appends the bytes a byte-level token stands for; false (nothing appended) when a character is
    /// outside the alphabet.</summary>
    public static bool TryDecode(string token, List<byte> into)
    {
        foreach (char c in token) if (!CharToByte.ContainsKey(c)) return false;
        foreach (char c in token) into.Add(CharToByte[c]);
        return true;
    }
}
