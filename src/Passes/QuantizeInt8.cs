using ModelCompiler.IR;

namespace ModelCompiler.Passes;

/// <summary>
/// Weight-only int8: every linear's weight becomes int8 codes with one scale per output channel (or per group of
/// --group-size weights), s = max|w|/127, q = round(w/s); activations stay fp32.
/// <code>
/// before: %y = linear %x, %w                       (%w = weight "l.weight" : f32[N,K])
/// after:  %y = quantized_linear %x, %q, %s {scheme="int8", group_size=K}   (%q : i8[N,K], %s : f32[N,1])
/// </code>
/// </summary>
public sealed class QuantizeInt8(QuantizationContext context) : IPass
{
    public string Name => "quantize-int8";

    public string Description => "weight-only int8 linears, one scale per output channel (or group)";

    public bool Run(Graph graph) => QuantizedLinears.QuantizeAll(graph, context, "int8", int.MaxValue);
}
