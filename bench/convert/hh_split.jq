# Split an HH-RLHF record into prompt, chosen and rejected at whole turns,
# the way `pfx convert --from hh-rlhf` does: the prompt is the longest run of
# whole turns both transcripts share, cut back so that each answer starts with
# an Assistant turn. Offsets are in code points, as jq slices strings.

def turns($text):
  [$text | match("\n\n(Human|Assistant):"; "g")] as $markers
  | [range(0; $markers | length) as $i
     | ($markers[$i].offset + $markers[$i].length) as $body
     | (if $i + 1 < ($markers | length) then $markers[$i + 1].offset else ($text | length) end) as $stop
     | {speaker: $markers[$i].captures[0].string, body: $body, text: $text[$body:$stop]}];

turns(.chosen) as $chosen
| turns(.rejected) as $rejected
| ([($chosen | length), ($rejected | length)] | min - 1) as $limit
| first(range(0; $limit + 1)
        | select(. == $limit or $chosen[.].speaker != $rejected[.].speaker or $chosen[.].text != $rejected[.].text))
  as $common
| last(range(0; $common + 1)
       | select(. == 0 or ($chosen[.].speaker == "Assistant" and $rejected[.].speaker == "Assistant")))
  as $shared
| if $shared == 0 then {prompt: "", chosen: .chosen, rejected: .rejected}
  else {prompt: .chosen[:$chosen[$shared].body],
        chosen: .chosen[$chosen[$shared].body:],
        rejected: .rejected[$rejected[$shared].body:]}
  end
