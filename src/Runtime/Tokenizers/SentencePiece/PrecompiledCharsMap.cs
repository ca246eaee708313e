using System.Buffers.Binary;
using System.Text;

namespace ModelCompiler.Runtime.Tokenizers.SentencePiece;

/// <summary>
/// SentencePiece's precompiled normalization rules (<c>normalizer_spec.precompiled_charsmap</c>, also the
/// "Precompiled" normalizer of tokenizer.json): <c>[u32 trie size][darts-clone double-array trie][NUL-terminated
/// replacement strings]</c>. Lookups are bounds-checked, so a hostile map can only fail to match.
/// </summary>
public sealed class PrecompiledCharsMap
{
    private readonly uint[] _units;
    private readonly byte[] _normalized;

    public bool IsEmpty => _units.Length == 0;

    private PrecompiledCharsMap(uint[] units, byte[] normalized) { _units = units; _normalized = normalized; }

    public static PrecompiledCharsMap Empty { get; } = new([], []);

    /// <summary>Parses the blob; <paramref name="where"/> names the file and field for the error message.</summary>
    public static PrecompiledCharsMap Parse(ReadOnlySpan<byte> blob, string where)
    {
        if (blob.Length == 0) return Empty;
        if (blob.Length < 4) throw new ModelFormatException($"{where}: precompiled charsmap of {blob.Length} bytes is too short");
        uint trieSize = BinaryPrimitives.ReadUInt32LittleEndian(blob);
        if (trieSize > blob.Length - 4 || trieSize % 4 != 0)
            throw new ModelFormatException($"{where}: precompiled charsmap declares a trie of {trieSize} bytes but has {blob.Length - 4}");
        var units = new uint[trieSize / 4];
        for (int i = 0; i < units.Length; i++) units[i] = BinaryPrimitives.ReadUInt32LittleEndian(blob[(4 + 4 * i)..]);
        return new PrecompiledCharsMap(units, blob[(4 + (int)trieSize)..].ToArray());
    }

    /// <summary>Darts-clone common-prefix search over <paramref name="key"/>: calls back (value, length) per match.</summary>
    private int Search(ReadOnlySpan<byte> key, bool longest, out int value)
    {
        value = -1;
        int bestLength = 0;
        if (_units.Length == 0) return 0;
        uint nodePos = 0;
        uint unit = _units[0];
        nodePos ^= Offset(unit);
        for (int i = 0; i < key.Length; i++)
        {
            nodePos ^= key[i];
            if (nodePos >= _units.Length) break;
            unit = _units[nodePos];
            if ((unit & ((1u << 31) | 0xFF)) != key[i]) break;
            nodePos ^= Offset(unit);
            if (((unit >> 8) & 1) != 0)
            {
                if (nodePos >= _units.Length) break;
                int v = (int)(_units[nodePos] & ((1u << 31) - 1));
                if (!longest) { value = v; return i + 1; }
                value = v; bestLength = i + 1;
            }
        }
        return bestLength;
    }

    private static uint Offset(uint unit) => (unit >> 10) << (int)((unit & (1u << 9)) >> 6);

    private string? Replacement(int value)
    {
        if (value < 0 || value >= _normalized.Length) return value == _normalized.Length ? "" : null;
        int end = Array.IndexOf(_normalized, (byte)0, value);
        if (end < 0) end = _normalized.Length;
        return Encoding.UTF8.GetString(_normalized, value, end - value);
    }

    /// <summary>The replacement of the first (shortest) rule matching a prefix of <paramref name="chunk"/>
    /// (the spm_precompiled crate's <c>transform</c>), or null.</summary>
    public string? Transform(ReadOnlySpan<char> chunk)
    {
        Span<byte> buf = stackalloc byte[64];
        int n = Encoding.UTF8.GetByteCount(chunk);
        var bytes = n <= buf.Length ? buf[..n] : new byte[n];
        Encoding.UTF8.GetBytes(chunk, bytes);
        int len = Search(bytes, longest: false, out int value);
        return len == 0 ? null : Replacement(value);
    }

    /// <summary>SentencePiece's normalize_prefix: the longest rule matching a prefix of
    /// <paramref name="input"/>: its replacement (UTF-8) and the bytes consumed; false when none matches.</summary>
    public bool TryLongestPrefix(ReadOnlySpan<byte> input, out int consumed, out ReadOnlySpan<byte> replacement)
    {
        replacement = default;
        consumed = Search(input, longest: true, out int value);
        if (consumed == 0) return false;
        if (value < 0 || value > _normalized.Length) { consumed = 0; return false; }
        int end = value == _normalized.Length ? value : Array.IndexOf(_normalized, (byte)0, value);
        if (end < 0) end = _normalized.Length;
        replacement = _normalized.AsSpan(value, end - value);
        return true;
    }
}
