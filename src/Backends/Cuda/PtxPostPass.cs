using System.Text;
using System.Text.RegularExpressions;

namespace ModelCompiler.Backends.Cuda;

/// <summary>
/// Rewrites the PTX that ILGPU 1.5.3 emits before the driver sees it. ILGPU routes every inline-asm operand
/// (<c>CudaAsm.EmitRef</c>'s Output/Input wrappers) through a scalar slot of local memory, a
/// <c>.local .b8 __local_depotN[size]</c> reached only through one address register: each use becomes an
/// <c>st.local</c>/<c>ld.local</c> pair, which in an <c>mma.sync</c> loop costs an order of magnitude. A slot that is
/// only ever stored and loaded whole, at offset 0, through that register is a private scalar, so it becomes a virtual
/// register (<c>mov</c> in place of the store and the load) and ptxas allocates it like any other. Slots used any other
/// way (vector accesses, offsets, address arithmetic) are left alone. Optionally retargets the module (<c>sm_90a</c>
/// for Hopper-only instructions).
/// </summary>
public static class PtxPostPass
{
    public sealed record Result(string Ptx, int SlotsPromoted, int SlotsKept);

    private static readonly Regex DepotDecl = new(@"^\s*\.local\s+\.align\s+\d+\s+\.b8\s+(__local_depot\d+)\[(\d+)\];\s*$", RegexOptions.Multiline);
    private static readonly Regex DepotAddress = new(@"^\s*mov\.(?:b64|u64)\s+(%rd\d+),\s*(__local_depot\d+);\s*$", RegexOptions.Multiline);
    private static readonly Regex Access = new(@"^(\s*)(st|ld)\.local\.([busf])(8|16|32|64)\s+(.*);\s*$");

    public static Result Run(string ptx, string? retarget = null)
    {
        var sizes = DepotDecl.Matches(ptx).ToDictionary(m => m.Groups[1].Value, m => int.Parse(m.Groups[2].Value));
        var addressOf = new Dictionary<string, string>(StringComparer.Ordinal); // register -> depot
        foreach (Match m in DepotAddress.Matches(ptx))
        {
            // A register that is set twice, or a depot named twice, is not a simple slot.
            if (addressOf.ContainsKey(m.Groups[1].Value)) addressOf[m.Groups[1].Value] = "";
            else addressOf[m.Groups[1].Value] = m.Groups[2].Value;
        }
        var lines = ptx.Split('\n');
        var candidates = addressOf.Where(kv => kv.Value != "" && sizes.ContainsKey(kv.Value)
                && addressOf.Count(o => o.Value == kv.Value) == 1)
            .ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);

        // Every other mention of the address register disqualifies its slot; accesses must match the slot's size.
        var rejected = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in lines)
        {
            foreach (var (reg, depot) in candidates)
            {
                if (!MentionsRegister(line, reg)) continue;
                if (DepotAddress.IsMatch(line)) continue;
                var access = Access.Match(line);
                if (!access.Success || !IsWholeSlotAccess(access, reg, sizes[depot])) rejected.Add(reg);
            }
        }
        var promoted = candidates.Where(kv => !rejected.Contains(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        var replacementFor = new Dictionary<string, string>(StringComparer.Ordinal);
        int next = 0;
        foreach (var reg in promoted.Keys) replacementFor[reg] = $"%mcslot{next++}";

        var output = new StringBuilder(ptx.Length);
        bool declared = false;
        foreach (var raw in lines)
        {
            var line = raw;
            var decl = DepotDecl.Match(line);
            if (decl.Success && promoted.ContainsValue(decl.Groups[1].Value)) continue;
            var address = DepotAddress.Match(line);
            if (address.Success && promoted.ContainsKey(address.Groups[1].Value)) continue;
            var access = Access.Match(line);
            if (access.Success)
            {
                var reg = AddressRegister(access.Groups[5].Value);
                if (reg is not null && replacementFor.TryGetValue(reg, out var slot))
                {
                    line = Rewrite(access, slot);
                }
            }
            // Declare the slots before the first register declaration of the function body.
            if (!declared && promoted.Count > 0 && Regex.IsMatch(line, @"^\s*\.reg\s"))
            {
                foreach (var (reg, depot) in promoted)
                    output.Append($"\t.reg .b{sizes[depot] * 8} {replacementFor[reg]};\n");
                declared = true;
            }
            output.Append(line).Append('\n');
        }
        var text = output.ToString(0, output.Length - 1); // Split/Append round trip adds one trailing '\n'
        if (retarget is not null)
        {
            text = Regex.Replace(text, @"^\.target\s+\S+", $".target {retarget}", RegexOptions.Multiline);
            if (retarget.StartsWith("sm_90", StringComparison.Ordinal))
                text = Regex.Replace(text, @"^\.version\s+(\d+)\.(\d+)", m => int.Parse(m.Groups[1].Value) < 8 ? ".version 8.0" : m.Value, RegexOptions.Multiline);
        }
        return new Result(text, promoted.Count, candidates.Count - promoted.Count);
    }

    /// <summary>The number of <c>ld.local</c>/<c>st.local</c> instructions in a PTX text.</summary>
    public static int LocalAccesses(string ptx) => Regex.Matches(ptx, @"\b(ld|st)\.local\.").Count;

    private static bool MentionsRegister(string line, string reg) =>
        line.Contains(reg, StringComparison.Ordinal) && Regex.IsMatch(line, Regex.Escape(reg) + @"(?!\d)");

    private static string? AddressRegister(string operands)
    {
        var m = Regex.Match(operands, @"\[(%rd\d+)\]");
        return m.Success ? m.Groups[1].Value : null;
    }

    private static bool IsWholeSlotAccess(Match access, string reg, int size)
    {
        int bits = int.Parse(access.Groups[4].Value);
        if (bits / 8 != size) return false;
        var operands = access.Groups[5].Value;
        // Exactly "[reg]" as the address, and the register nowhere else in the instruction.
        if (!operands.Contains($"[{reg}]", StringComparison.Ordinal)) return false;
        var rest = operands.Replace($"[{reg}]", "", StringComparison.Ordinal);
        return !MentionsRegister(rest, reg);
    }

    private static string Rewrite(Match access, string slot)
    {
        var indent = access.Groups[1].Value;
        var bits = access.Groups[4].Value;
        var parts = access.Groups[5].Value.Split(',', 2, StringSplitOptions.TrimEntries);
        // st.local [slot], value -> mov slot, value; ld.local dest, [slot] -> mov dest, slot (registers move as bits).
        return access.Groups[2].Value == "st"
            ? $"{indent}mov.b{bits}\t{slot}, {LiteralAsBits(parts[1])};"
            : $"{indent}mov.b{bits}\t{parts[0]}, {slot};";
    }

    /// <summary>A float literal (0fXXXXXXXX / 0dXXXXXXXXXXXXXXXX) as the integer literal of the same bits, for a .b register.</summary>
    private static string LiteralAsBits(string value)
    {
        if (value.StartsWith("0f", StringComparison.OrdinalIgnoreCase) || value.StartsWith("0d", StringComparison.OrdinalIgnoreCase))
            return "0x" + value[2..];
        return value;
    }
}
