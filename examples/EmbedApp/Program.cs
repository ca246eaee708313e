using ModelCompiler.Generated;
using ModelCompiler.Runtime;

// usage: EmbedApp <weights: .safetensors file, folder or index> <token id>...
if (args.Length < 2)
{
    Console.Error.WriteLine("usage: EmbedApp <model.safetensors> <token id>...");
    return 2;
}
try
{
    var ids = args[1..].Select(long.Parse).ToArray();
    // The class `mc compile examples/llama.arch -o out/` generated, in out/Llama.dll.
    ICompiledModel model = new LlamaModel();
    var (logits, argmax) = Embed.Run(model, args[0], ids);
    Console.WriteLine($"logits[{logits.Length}] of the last token: {string.Join(", ", logits.Take(5).Select(v => v.ToString("G6")))}, ...");
    Console.WriteLine($"argmax: {argmax}");
    return 0;
}
catch (Exception e) when (e is McException or FormatException or OverflowException)
{
    Console.Error.WriteLine($"EmbedApp: {e.Message}");
    return 1;
}
