using ModelCompiler.IR;

namespace ModelCompiler.Passes;

/// <summary>
/// Weight-only int4, round to nearest: groups of --group-size (default 64) weights of a row share a scale and a zero
/// point, s = (max − min)/15, z = round(−min/s), q = clamp(round(w/s) + z, 0, 15); two codes a byte.
/// <code>
/// before: %y = linear %x, %w
/// after:  %y = quantized_linear %x, %q, %s, %z {scheme="int4", group_size=64, zeros=true}   (%q : u8[N,K/2], %s : f32[N,K/64], %z : u8[N,K/64])
/// </code>
/// </summary>
public sealed class QuantizeInt4(QuantizationContext context) : IPass
{
    public const int DefaultGroupSize = 64;

    public string Name => "quantize-int4";

    public string Description => "weight-only int4 linears, round to nearest, a scale and zero point per group";

    public bool Run(Graph graph) => QuantizedLinears.QuantizeAll(graph, context, "int4", DefaultGroupSize);
}
