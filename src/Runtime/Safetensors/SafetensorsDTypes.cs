namespace ModelCompiler.Runtime;

/// <summary>The safetensors spelling of dtypes, and shape arithmetic shared by the reader and writer.</summary>
internal static class SafetensorsDTypes
{
    public static string Name(DType dtype) => dtype switch
    {
        DType.F64 => "F64",
        DType.F32 => "F32",
        DType.F16 => "F16",
        DType.BF16 => "BF16",
        DType.I64 => "I64",
        DType.I32 => "I32",
        DType.I8 => "I8",
        DType.U8 => "U8",
        DType.Bool => "BOOL",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    /// <summary>
    /// Maps the dtypes we support. Others the format defines (I16, U16, U32, U64, F8_*, ...) are
    /// reported by the caller as unsupported, naming the tensor.
    /// </summary>
    public static bool TryParse(string name, out DType dtype)
    {
        switch (name)
        {
            case "F64": dtype = DType.F64; return true;
            case "F32": dtype = DType.F32; return true;
            case "F16": dtype = DType.F16; return true;
            case "BF16": dtype = DType.BF16; return true;
            case "I64": dtype = DType.I64; return true;
            case "I32": dtype = DType.I32; return true;
            case "I8": dtype = DType.I8; return true;
            case "U8": dtype = DType.U8; return true;
            case "BOOL": dtype = DType.Bool; return true;
            default: dtype = default; return false;
        }
    }

    /// <summary>Product of the dimensions; throws <see cref="OverflowException"/> past int64.</summary>
    public static long ElementCount(IReadOnlyList<long> shape)
    {
        long count = 1;
        foreach (long dim in shape) count = checked(count * dim);
        return count;
    }
}

/// <summary>Builds the one-line messages of format errors.</summary>
internal static class SafetensorsErrors
{
    public static ModelFormatException Format(string path, string detail) => new(OneLine($"{path}: {detail}"));

    public static ModelFormatException Format(string path, string detail, Exception inner) =>
        new(OneLine($"{path}: {detail}"), inner);

    /// <summary>Quotes a name taken from a file (see <see cref="UserText.Quote"/>).</summary>
    public static string Quote(string name) => UserText.Quote(name);

    private static string OneLine(string message) =>
        message.Contains('\n') || message.Contains('\r')
            ? message.Replace("\r\n", " ").Replace('\n', ' ').Replace('\r', ' ')
            : message;
}
