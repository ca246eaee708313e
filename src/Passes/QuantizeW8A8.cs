using ModelCompiler.IR;

namespace ModelCompiler.Passes;

/// <summary>
/// Plain W8A8: int8 weights with one scale per output channel, and each row (token) of the activations rounded to
/// int8 with its own scale at run time; the products are int8×int8→int32. No smoothing (compare
/// <see cref="SmoothQuant"/>), so activation outliers set the scale of their whole token.
/// <code>
/// before: %y = linear %x, %w
/// after:  %y = quantized_linear %x, %q, %s {scheme="w8a8", group_size=K}
/// </code>
/// </summary>
public sealed class QuantizeW8A8(QuantizationContext context) : IPass
{
    public string Name => "quantize-w8a8";

    public string Description => "int8 weights per output channel and int8 activations per token (no smoothing)";

    public bool Run(Graph graph) => QuantizedLinears.QuantizeAll(graph, context, "w8a8", int.MaxValue);
}
