namespace ModelCompiler.Runtime;

/// <summary>Element types of tensors, in the IR and in weight files.</summary>
public enum DType
{
    F32,
    F16,
    BF16,
    F64,
    I64,
    I32,
    I8,
    U8,
    Bool,
}

public static class DTypes
{
    public static int SizeInBytes(this DType t) => t switch
    {
        DType.F32 => 4,
        DType.F16 => 2,
        DType.BF16 => 2,
        DType.F64 => 8,
        DType.I64 => 8,
        DType.I32 => 4,
        DType.I8 => 1,
        DType.U8 => 1,
        DType.Bool => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    public static bool IsFloat(this DType t) => t is DType.F32 or DType.F16 or DType.BF16 or DType.F64;

    public static bool IsInteger(this DType t) => t is DType.I64 or DType.I32 or DType.I8 or DType.U8;

    /// <summary>The short spelling used by the DSL and the IR printer (f32, i64, ...).</summary>
    public static string ShortName(this DType t) => t switch
    {
        DType.F32 => "f32",
        DType.F16 => "f16",
        DType.BF16 => "bf16",
        DType.F64 => "f64",
        DType.I64 => "i64",
        DType.I32 => "i32",
        DType.I8 => "i8",
        DType.U8 => "u8",
        DType.Bool => "bool",
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    public static bool TryParseShortName(string s, out DType t)
    {
        foreach (var v in Enum.GetValues<DType>())
        {
            if (v.ShortName() == s) { t = v; return true; }
        }
        t = default;
        return false;
    }
}
